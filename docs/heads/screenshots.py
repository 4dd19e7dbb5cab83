"""The README's pictures of the attention viewer, taken in headless Chromium as a person sees the page:

    python docs/heads/screenshots.py docs/heads/bible/view.html cross 1 0 9 docs/heads/bible/view.png
    python docs/heads/screenshots.py docs/heads/minilm/view.html self 0 2 4 docs/heads/minilm/view.png

(page, kind, layer, head, the query token to hover, the PNG to write; the weights shown are printed).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.browser import browser, show  # noqa: E402


def main() -> None:
    page, kind, layer, head, query, out = sys.argv[1:7]
    driver = browser(1300, 900)
    if driver is None:
        sys.exit("screenshots.py: no chromium and chromedriver here (apt-get install chromium chromium-driver)")
    try:
        weights = show(driver, Path(page), kind, int(layer), int(head), int(query))
        from selenium.webdriver.common.by import By

        tokens = [k.text for k in driver.find_elements(By.CSS_SELECTOR, "#keys .key")]
        print(" ".join(f"{t}:{w:.3f}" for t, w in zip(tokens, weights)))
        driver.save_screenshot(out)
        print(f"wrote {out}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
