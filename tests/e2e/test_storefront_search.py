"""Searching in the storefront, in a real headless Chromium: words, a
category, a price range and an order, all in the address bar (so a search
can be shared, reloaded and gone back to), and a hostile query shown as text.
Screenshots go to var/screenshots/ with the others."""
from urllib.parse import parse_qs, quote

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.e2e.storefront import DESKTOP, PHONE, XSS_NAME

pytestmark = pytest.mark.e2e

PRODUCTS = [
    ("Moka pot", "24.90", "kitchen", "Three cups, aluminium"),
    ("Moka pot, large", "44.90", "kitchen", "Nine cups"),
    ("Milk jug", "12.00", "kitchen", "For the moka pot's coffee"),
    ("电动咖啡壶", "39.00", "kitchen", "Electric"),
    ("Watering can", "18.50", "garden", "Five litres"),
    ("Flower pot", "6.00", "garden", "Terracotta"),
]


@pytest.fixture
def catalogue(api):
    admin = api.admin_token()
    return {name: api.product(admin, name, price, category=category, description=description)
            for name, price, category, description in PRODUCTS}


def shown(storefront):
    """The names of the products on the page, in order."""
    return [card.find_element(By.TAG_NAME, "h2").text for card in
            storefront.browser.find_elements(By.CSS_SELECTOR, "[data-product-id]")]


def address(storefront):
    """The search the address bar holds: ``{"q": "moka", ...}``."""
    query = storefront.browser.execute_script("return location.hash").partition("?")[2]
    return {name: values[0] for name, values in parse_qs(query).items()}


def choose(storefront, label, text):
    [field] = [element for element in storefront.browser.find_elements(By.TAG_NAME, "label")
               if element.text == label]
    Select(storefront.browser.find_element(By.ID, field.get_attribute("for"))).select_by_visible_text(
        text)


def search_for(storefront, words):
    storefront.fill("Search", words)
    storefront.click_button("Search")


def test_typing_a_word_shows_the_matches_and_puts_the_search_in_the_address(
        storefront, catalogue):
    storefront.open()
    search_for(storefront, "mok")
    storefront.wait_for(lambda: address(storefront) == {"q": "mok"})
    storefront.wait_for(lambda: shown(storefront) == ["Moka pot, large", "Moka pot", "Milk jug"])
    assert storefront.text(".matches") == "3 products match."
    storefront.screenshot("search-desktop", DESKTOP)
    storefront.screenshot("search-phone", PHONE)
    search_for(storefront, "咖啡")
    storefront.wait_for(lambda: shown(storefront) == ["电动咖啡壶"])
    # the previous search is one step back, and a reload keeps the search
    storefront.browser.back()
    storefront.wait_for(lambda: shown(storefront) == ["Moka pot, large", "Moka pot", "Milk jug"])
    storefront.browser.refresh()
    storefront.settle()
    storefront.wait_for(lambda: shown(storefront) == ["Moka pot, large", "Moka pot", "Milk jug"])
    assert storefront.browser.find_element(By.NAME, "q").get_attribute("value") == "mok"


def test_a_category_and_a_sort_by_price_narrow_and_order_the_catalogue(storefront, catalogue):
    storefront.open()
    choose(storefront, "Category", "garden (2)")
    choose(storefront, "Sort by", "Price, lowest first")
    storefront.click_button("Search")
    storefront.wait_for(lambda: shown(storefront) == ["Flower pot", "Watering can"])
    assert address(storefront) == {"category": "garden", "sort": "price"}
    choose(storefront, "Category", "kitchen (4)")
    choose(storefront, "Sort by", "Price, highest first")
    storefront.fill("Highest price", "40.00")
    storefront.click_button("Search")
    storefront.wait_for(lambda: shown(storefront) == ["电动咖啡壶", "Moka pot", "Milk jug"])
    assert address(storefront) == {"category": "kitchen", "max_price": "40.00", "sort": "-price"}
    # a shared address opens on the same search, its fields filled in
    storefront.open("#/?category=kitchen&max_price=40.00&sort=-price")
    storefront.wait_for(lambda: shown(storefront) == ["电动咖啡壶", "Moka pot", "Milk jug"])
    category = Select(storefront.browser.find_element(By.NAME, "category"))
    assert category.first_selected_option.text == "kitchen (4)"


def test_a_product_page_links_to_its_category(storefront, catalogue):
    storefront.open(f"#/products/{catalogue['Watering can']}")
    storefront.click_link("garden")
    storefront.wait_for(lambda: shown(storefront) == ["Watering can", "Flower pot"])  # id order
    assert address(storefront) == {"category": "garden"}


def test_results_page_with_the_search_kept(storefront, api):
    admin = api.admin_token()
    for number in range(14):
        api.product(admin, f"Mug {number:02}", "5.00")
    api.product(admin, "Teapot", "5.00")
    storefront.open("#/?q=mug&sort=name")
    storefront.wait_for(lambda: len(shown(storefront)) == 12)
    assert storefront.text(".pager span") == "Page 1 of 2"
    storefront.click_link("Next →")
    storefront.wait_for(lambda: shown(storefront) == ["Mug 12", "Mug 13"])
    assert address(storefront) == {"q": "mug", "sort": "name", "offset": "12"}


def test_a_hostile_query_is_shown_as_text_and_finds_only_what_holds_it(storefront, api):
    admin = api.admin_token()
    api.product(admin, "Plain mug", "5.00")
    marked_up = api.product(admin, XSS_NAME, "1.00")
    storefront.open()
    storefront.fill("Search", XSS_NAME)
    storefront.browser.find_element(By.NAME, "q").send_keys(Keys.ENTER)
    storefront.wait_for(lambda: address(storefront) == {"q": XSS_NAME})
    storefront.wait_for(lambda: shown(storefront) == [XSS_NAME])
    assert storefront.card(marked_up)
    assert storefront.browser.find_element(By.NAME, "q").get_attribute("value") == XSS_NAME
    with pytest.raises(NoAlertPresentException):
        storefront.browser.switch_to.alert.text
    for query in ("%", "' OR 1=1 --", "&|!:*()"):
        storefront.open(f"#/?q={quote(query, safe='')}")
        storefront.wait_for(lambda: storefront.text(".matches") == "0 products match.")
        assert storefront.text("main") and "Nothing matches this search." in storefront.text("main")


def test_a_search_the_api_refuses_says_why_beside_the_field(storefront, catalogue):
    storefront.open("#/?min_price=50.00&max_price=10.00")
    storefront.wait_for(lambda: storefront.form_error() == "The query string is invalid")
    message = storefront.browser.find_element(By.CSS_SELECTOR, '[data-error-for="min_price"]')
    assert message.text == "Must not be above max_price."
