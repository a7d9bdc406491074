"""The story page as a person sees it: headless Chromium against the running server."""

import shutil

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (make test installs them where apt-get can)",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1000,1400",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def tell(browser, url: str, title: str, age: str = "3-5", style: str = "bedtime", themes: bool = True) -> None:
    browser.get(url)
    field = browser.find_element(By.ID, "title")
    field.clear()
    field.send_keys(title)
    Select(browser.find_element(By.ID, "age_group")).select_by_value(age)
    Select(browser.find_element(By.ID, "style")).select_by_value(style)
    if not themes:
        for box in browser.find_elements(By.CSS_SELECTOR, "#themes input:checked"):
            box.click()
    Select(browser.find_element(By.ID, "length")).select_by_visible_text("short")
    browser.find_element(By.ID, "seed").send_keys("4")
    browser.find_element(By.ID, "tell").click()
    try:
        WebDriverWait(browser, 90).until(
            lambda b: (
                b.find_element(By.ID, "status").text in ("The end.",)
                or b.find_element(By.ID, "status").text.startswith("No story")
            )
        )
    except TimeoutException:
        raise AssertionError(f"no story after 90 s: {browser.find_element(By.ID, 'status').text!r}") from None


def test_a_story_streams_into_the_page_with_its_safety_verdict(browser, story_server, tmp_path):
    tell(browser, story_server.url, "The Lantern Fox")
    assert browser.find_element(By.ID, "status").text == "The end."
    paragraphs = browser.find_elements(By.CSS_SELECTOR, "#story-text p")
    assert paragraphs and sum(len(p.text.split()) for p in paragraphs) >= 3
    assert "passed the content screen" in browser.find_element(By.ID, "safety").text
    assert browser.find_element(By.ID, "story-title").text == "The Lantern Fox"
    shot = tmp_path / "story-page.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_markup_in_a_story_shows_as_text(browser, story_server):
    title = "<script>window.pwned = 1</script><b>Bold</b> & Co"
    tell(browser, story_server.url, title)
    heading = browser.find_element(By.ID, "story-title")
    assert heading.text == title  # shown as the characters typed
    assert heading.find_elements(By.TAG_NAME, "b") == [] and heading.find_elements(By.TAG_NAME, "script") == []
    assert browser.execute_script("return typeof window.pwned") == "undefined"


def test_a_story_with_any_style_and_no_theme(browser, story_server):
    tell(browser, story_server.url, "The Moon Hare", age="6-8", style="", themes=False)
    assert browser.find_element(By.ID, "status").text == "The end."
    assert browser.find_elements(By.CSS_SELECTOR, "#story-text p")
    assert "passed the content screen" in browser.find_element(By.ID, "safety").text
