"""The storefront as a person uses it in a real headless Chromium: links,
labelled fields, buttons (for tests/e2e/test_storefront*.py)."""
import pathlib
import uuid

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = pathlib.Path(__file__).parents[2] / "var" / "screenshots"
DESKTOP, PHONE = (1280, 900), (390, 844)
XSS_NAME = "<img src=x onerror=alert(1)>"


class Storefront:
    """The page, as a person uses it: links, labelled fields, buttons."""

    def __init__(self, browser, base_url):
        self.browser = browser
        self.base_url = base_url

    def open(self, route="#/"):
        self.browser.get(f"{self.base_url}/{route}")
        self.settle()

    def wait_for(self, condition, timeout=15):
        """Waits until ``condition()`` is true; a page drawn again meanwhile
        (its elements replaced) is looked at again."""
        return WebDriverWait(self.browser, timeout, ignored_exceptions=(
            StaleElementReferenceException, NoSuchElementException)).until(
            lambda _: condition())

    def settle(self):
        """Waits until the page has drawn its route (main is no longer busy)."""
        self.wait_for(lambda: self.browser.find_elements(By.CSS_SELECTOR, "main h1")
                      and not self.browser.find_elements(By.CSS_SELECTOR, "main[aria-busy]"))

    def heading(self):
        return self.browser.find_element(By.CSS_SELECTOR, "main h1").text

    def click_link(self, text):
        self.browser.find_element(By.LINK_TEXT, text).click()

    def click_button(self, text):
        [button] = [button for button in self.browser.find_elements(By.TAG_NAME, "button")
                    if button.text == text and button.is_displayed()]
        button.click()

    def fill(self, label, value):
        [field] = [label_element for label_element in self.browser.find_elements(
            By.TAG_NAME, "label") if label_element.text == label]
        entry = self.browser.find_element(By.ID, field.get_attribute("for"))
        entry.clear()
        entry.send_keys(str(value))

    def go(self, route):
        self.browser.execute_script("location.hash = arguments[0]", route)
        self.wait_for(lambda: self.browser.execute_script("return location.hash") == route)
        self.settle()

    def register(self, username):
        self.click_link("Register")
        self.wait_for(lambda: self.heading() == "Register")
        self.fill("Username", username)
        self.fill("Email", f"{username}@example.com")
        self.fill("Password (8 characters or more)", "wonderland")
        self.click_button("Register")
        self.wait_for(lambda: self.text("#who") == f"Signed in as {username}")

    def log_in(self, username, password):
        self.click_link("Log in")
        self.wait_for(lambda: self.heading() == "Log in")
        self.fill("Username", username)
        self.fill("Password", password)
        self.click_button("Log in")
        self.wait_for(lambda: self.text("#who") == f"Signed in as {username}")

    def new_customer_with_one_in_the_cart(self, product_id):
        """Registers a new customer, adds one of the product and opens the cart."""
        self.open()
        self.register(f"c{uuid.uuid4().hex[:8]}")
        self.go(f"#/products/{product_id}")
        self.click_button("Add to cart")
        self.go("#/cart")
        self.wait_for(lambda: self.heading() == "Cart")

    def text(self, selector):
        found = self.browser.find_elements(By.CSS_SELECTOR, selector)
        return found[0].text if found else None

    def card(self, product_id):
        return self.browser.find_element(By.CSS_SELECTOR, f'[data-product-id="{product_id}"]')

    def status(self):
        return self.browser.find_element(By.CSS_SELECTOR, "main .status").get_attribute(
            "data-status")

    def form_error(self):
        messages = [element.text for element in self.browser.find_elements(
            By.CSS_SELECTOR, ".form-error") if element.text]
        return messages[0] if messages else None

    def screenshot(self, name, size):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.browser.set_window_size(*size)
        self.browser.save_screenshot(str(SCREENSHOTS / f"storefront-{name}.png"))
        self.browser.set_window_size(*DESKTOP)
