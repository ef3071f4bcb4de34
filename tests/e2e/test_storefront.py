"""The storefront at / in a real headless Chromium, against all five services:
a customer shops and follows an order through the services without
reloading, a rejection and a declined payment show the API's words, an
admin's restock shows in the catalogue, and user-supplied text stays text.
Screenshots of the catalogue, the cart and an order, desktop and phone
sized, are written to var/screenshots/."""
import re
import uuid

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from sqlalchemy import text

from tests.e2e.storefront import DESKTOP, PHONE, XSS_NAME
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def stocked(api, *products):
    """``stocked(api, ("Mug", "9.50", 5), ...)``: product ids, each restocked."""
    admin = api.admin_token()
    ids = []
    for name, price, units in products:
        product_id = api.product(admin, name, price)
        assert api.restock(admin, product_id, units).status_code == 200
        ids.append(product_id)
    return ids


def test_a_customer_shops_and_follows_the_order_to_paid_without_reloading(storefront, api):
    mug, pot = stocked(api, ("Mug", "9.50", 5), ("Moka pot", "34.90", 3))
    storefront.open()
    storefront.register(f"c{uuid.uuid4().hex[:8]}")
    storefront.go("#/")
    storefront.wait_for(lambda: storefront.card(mug))
    assert "5 available" in storefront.card(mug).text
    assert "34.90" in storefront.card(pot).text
    for product_id in (mug, mug, pot):
        storefront.card(product_id).find_element(By.TAG_NAME, "button").click()
    assert storefront.text("#cart-count") == "3"
    storefront.screenshot("catalogue-desktop", DESKTOP)
    storefront.screenshot("catalogue-phone", PHONE)

    storefront.click_link("Cart (3)")
    storefront.wait_for(lambda: storefront.heading() == "Cart")
    quantities = {row.get_attribute("data-product-id"): row.find_element(
        By.CSS_SELECTOR, "input.quantity").get_attribute("value")
        for row in storefront.browser.find_elements(By.CSS_SELECTOR, "tr[data-product-id]")}
    assert quantities == {str(mug): "2", str(pot): "1"}
    storefront.screenshot("cart-desktop", DESKTOP)
    storefront.screenshot("cart-phone", PHONE)

    # a reload would lose this mark: the status changes while the page stays
    storefront.browser.execute_script("window.shopTestMark = 'same page'")
    storefront.click_button("Place the order")
    storefront.wait_for(lambda: storefront.heading().startswith("Order #"))
    storefront.wait_for(lambda: storefront.status() == "awaiting_payment")
    assert storefront.browser.execute_script("return window.shopTestMark") == "same page"
    assert storefront.text(".total") == "Total 53.90"
    page = storefront.text("main")
    assert "null" not in page and "undefined" not in page, page
    storefront.screenshot("order-desktop", DESKTOP)
    storefront.screenshot("order-phone", PHONE)

    storefront.click_button("Pay")
    storefront.wait_for(lambda: storefront.status() == "paid")
    # inventory takes the paid units off its stock
    wait_for(lambda: (api.stock(mug)["on_hand"], api.stock(pot)["on_hand"]) == (3, 2))
    storefront.click_link("My orders")
    storefront.wait_for(lambda: storefront.heading() == "My orders")
    [row] = storefront.browser.find_elements(By.CSS_SELECTOR, "tr[data-order-id]")
    assert "Paid" in row.text and "53.90" in row.text
    # placing and paying each went out with a fresh Idempotency-Key
    keys = idempotency_keys(api)
    assert len(set(keys)) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)


def idempotency_keys(api):
    with api.database_engines["orders"].connect() as connection:
        return connection.execute(text("SELECT key FROM idempotency_keys")).scalars().all()


def test_an_order_whose_answer_is_lost_is_sent_again_with_its_key_and_placed_once(
        storefront, api):
    [mug] = stocked(api, ("Mug", "9.50", 5))
    storefront.new_customer_with_one_in_the_cart(mug)
    # the shop places the order, but its answer never reaches the page
    storefront.browser.execute_script("""
        const realFetch = window.fetch;
        let lost = false;
        window.fetch = async (path, options) => {
          const response = await realFetch(path, options);
          if (!lost && path === "/orders" && options.method === "POST") {
            lost = true;
            throw new TypeError("the connection was reset");
          }
          return response;
        };""")
    storefront.click_button("Place the order")
    storefront.wait_for(lambda: storefront.heading().startswith("Order #"))
    with api.database_engines["orders"].connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM orders")).scalar_one() == 1
    assert len(idempotency_keys(api)) == 1


def test_an_order_for_more_than_the_stock_shows_rejected_with_the_shortage(storefront, api):
    [mug] = stocked(api, ("Mug", "9.50", 2))
    storefront.open(f"#/products/{mug}")
    assert storefront.text(".stock") == "2 available"
    storefront.new_customer_with_one_in_the_cart(mug)
    storefront.fill(api.call("GET", f"/products/{mug}").json()["name"], 9)
    storefront.browser.find_element(By.CSS_SELECTOR, "h1").click()  # leave the field: saved
    storefront.click_button("Place the order")
    storefront.wait_for(lambda: storefront.status() == "rejected" if storefront.heading(
    ).startswith("Order #") else False)
    assert "9 asked, 2 available" in storefront.text(".rejection")
    assert api.stock(mug) == {"product_id": mug, "on_hand": 2, "reserved": 0, "available": 2}


@pytest.mark.parametrize("settings", [
    {"PAYMENTS": {"PROVIDER": "orders.payments.SimulatedPayments", "DECLINE": True}}])
def test_a_declined_payment_shows_the_apis_message_and_the_order_still_awaits(
        storefront, api):
    [mug] = stocked(api, ("Mug", "9.50", 2))
    storefront.new_customer_with_one_in_the_cart(mug)
    storefront.click_button("Place the order")
    storefront.wait_for(lambda: storefront.heading().startswith("Order #")
                        and storefront.status() == "awaiting_payment")
    storefront.click_button("Pay")
    storefront.wait_for(storefront.form_error)
    assert storefront.form_error().startswith("Payment for order")
    assert "declines every payment" in storefront.form_error()
    assert storefront.status() == "awaiting_payment"
    assert api.stock(mug)["reserved"] == 1
    # giving up on it returns the unit
    storefront.click_button("Cancel")
    storefront.wait_for(lambda: storefront.status() == "cancelled")
    wait_for(lambda: api.stock(mug)["reserved"] == 0)


def test_an_admins_changes_show_in_the_catalogue(storefront, api):
    [mug] = stocked(api, ("Mug", "9.50", 1))
    storefront.open()
    storefront.log_in("admin", "admin-password")
    storefront.go(f"#/products/{mug}")
    storefront.wait_for(lambda: storefront.text(".stock") == "1 available")
    storefront.fill("Units to add", 8)
    storefront.click_button("Restock")
    storefront.wait_for(lambda: storefront.text(".stock") == "9 available")
    storefront.fill("Units to write off", 2)
    storefront.click_button("Write off")
    storefront.wait_for(lambda: storefront.text(".stock") == "7 available")
    storefront.fill("Name", "Big mug")
    storefront.fill("Price", "11.00")
    storefront.click_button("Save")
    storefront.wait_for(lambda: storefront.heading() == "Big mug")
    storefront.click_button("Log out")
    storefront.wait_for(lambda: storefront.text("#who") in ("", None))
    storefront.go(f"#/products/{mug}")
    storefront.wait_for(lambda: storefront.text(".stock") == "7 available")
    assert storefront.text(".price") == "11.00"
    assert not storefront.browser.find_elements(By.CSS_SELECTOR, "section.admin")


def test_an_admin_sees_every_customers_orders(storefront, api):
    [mug] = stocked(api, ("Mug", "9.50", 3))
    placed = api.place(api.customer_token(f"c{uuid.uuid4().hex[:8]}"), (mug, 1))
    storefront.open()
    storefront.log_in("admin", "admin-password")
    storefront.click_link("Admin")
    storefront.wait_for(lambda: storefront.heading() == "Admin")
    row = storefront.browser.find_element(By.CSS_SELECTOR, f'tr[data-order-id="{placed["id"]}"]')
    assert "9.50" in row.text
    row.find_element(By.TAG_NAME, "a").click()
    storefront.wait_for(lambda: storefront.heading() == f"Order #{placed['id']}")


def test_an_admin_adds_a_product_and_a_bad_price_is_shown_beside_its_field(storefront, api):
    storefront.open()
    storefront.log_in("admin", "admin-password")
    storefront.click_link("Admin")
    storefront.wait_for(lambda: storefront.heading() == "Admin")
    name = f"Teapot {uuid.uuid4().hex[:6]}"
    storefront.fill("Name", name)
    storefront.fill("Price", "12.345")
    storefront.click_button("Add")
    storefront.wait_for(storefront.form_error)
    price_error = storefront.browser.find_element(By.CSS_SELECTOR, '[data-error-for="price"]')
    assert "at most 2 decimal places" in price_error.text
    storefront.fill("Price", "12.50")
    storefront.click_button("Add")
    storefront.wait_for(lambda: storefront.heading() == name)
    assert storefront.text(".price") == "12.50"


def test_a_customer_can_shop_with_the_keyboard_alone(storefront, api):
    [mug] = stocked(api, ("Mug", "9.50", 2))
    storefront.open()
    storefront.wait_for(lambda: storefront.card(mug))
    # Tab through the page until the card's button has the focus, then press Enter
    for _ in range(20):
        ActionChains(storefront.browser).send_keys(Keys.TAB).perform()
        focused = storefront.browser.switch_to.active_element
        if focused.get_attribute("aria-label") == "Add Mug to the cart":
            break
    else:
        pytest.fail("Tab never reached the Add to cart button")
    ActionChains(storefront.browser).send_keys(Keys.ENTER).perform()
    storefront.wait_for(lambda: storefront.text("#cart-count") == "1")


def test_wrong_credentials_show_the_apis_message(storefront):
    storefront.open()
    storefront.click_link("Log in")
    storefront.wait_for(lambda: storefront.heading() == "Log in")
    storefront.fill("Username", "nobody")
    storefront.fill("Password", "not-the-password")
    storefront.click_button("Log in")
    storefront.wait_for(storefront.form_error)
    assert storefront.form_error() == "Invalid username or password"
    assert "{" not in storefront.browser.find_element(By.TAG_NAME, "main").text


def test_a_product_name_with_markup_is_shown_as_text(storefront, api):
    admin = api.admin_token()
    product_id = api.product(admin, XSS_NAME, "1.00")
    api.restock(admin, product_id, 1)
    storefront.open()
    storefront.wait_for(lambda: storefront.card(product_id))
    assert storefront.card(product_id).find_element(By.TAG_NAME, "h2").text == XSS_NAME
    storefront.go(f"#/products/{product_id}")
    storefront.wait_for(lambda: storefront.heading() == XSS_NAME)
    assert not storefront.browser.find_elements(By.CSS_SELECTOR, "main img")
    with pytest.raises(NoAlertPresentException):
        storefront.browser.switch_to.alert.text


def test_the_page_comes_from_the_gateway_alone_with_its_security_headers(storefront, api):
    storefront.open()
    loaded = storefront.browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert loaded and all(url.startswith(api.base_url) for url in loaded)
    for path in ("/", "/storefront/app.js", "/storefront/style.css"):
        answer = api.session.get(api.base_url + path, timeout=10)
        assert answer.status_code == 200
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
    assert api.session.get(api.base_url + "/storefront/app.js").headers[
        "Content-Type"].startswith("text/javascript")
    assert api.call("GET", "/storefront/../service.py").status_code == 404
