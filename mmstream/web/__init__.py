"""Pages a person looks at: HTML reports of recordings and event files (and, later, the live
view). Every page is self-contained: templates, scripts and styles are inlined, so it opens
with no network.
"""
