"""Swagger UI at /docs, in a real headless Chromium driven by chromedriver:
the page loads its own static files from the gateway, reads /openapi.json
and lists every operation. The screenshot is kept in var/screenshots/."""
import pathlib

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.e2e

SCREENSHOT = pathlib.Path(__file__).parents[2] / "var" / "screenshots" / "docs.png"


@pytest.mark.parametrize("browser", [(1280, 2400)], indirect=True)
def test_swagger_ui_lists_every_operation_of_the_document(api, browser):
    document = api.call("GET", "/openapi.json").json()
    documented = {(method.upper(), path) for path, operations in document["paths"].items()
                  for method in operations}

    browser.get(f"{api.base_url}/docs")
    WebDriverWait(browser, 20).until(
        lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(documented))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))

    listed = {(block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
               block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"))
              for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")}
    assert listed == documented
    # grouped by the document's tags, in its order, each operation under its own tag
    sections = browser.find_elements(By.CSS_SELECTOR, ".opblock-tag-section")
    headings = [section.find_element(By.CSS_SELECTOR, ".opblock-tag").get_attribute("data-tag")
                for section in sections]
    assert headings == [tag["name"] for tag in document["tags"]]
    for heading, section in zip(headings, sections):
        for block in section.find_elements(By.CSS_SELECTOR, ".opblock"):
            method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.lower()
            path = block.find_element(
                By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path")
            assert document["paths"][path][method]["tags"] == [heading]
    assert document["info"]["title"] in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    # the page's scripts and styles came from the gateway, not from a CDN
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert loaded and all(url.startswith(api.base_url) for url in loaded)
