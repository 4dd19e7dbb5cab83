"""Headless Chromium for the attention viewer's page: the browser test and the README's screenshots
(docs/heads/screenshots.py) drive the page the same way a person does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Optional


def browser(width: int = 1100, height: int = 900):
    """Headless Chromium through Selenium with Debian's chromedriver, or None where there is none."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def show(driver, page: Path, kind: str, layer: int, head: int, query: int, example: int = 0) -> List[Optional[float]]:
    """Open ``page``, pick the example, kind, layer and head in its menus, hover query token
    ``query``: -> the weights the page shows on the tokens attended to (their data-weight)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(Path(page).resolve().as_uri())
    for menu, value in (("example", example), ("kind", kind), ("layer", layer), ("head", head)):
        Select(driver.find_element(By.ID, menu)).select_by_value(str(value))
    ActionChains(driver).move_to_element(driver.find_elements(By.CSS_SELECTOR, "#queries .query")[query]).perform()
    return [float(k.get_attribute("data-weight")) if k.get_attribute("data-weight") else None for k in driver.find_elements(By.CSS_SELECTOR, "#keys .key")]
