"""Browser tests: the console and the widget in real headless Chromium (marker `browser`)."""
