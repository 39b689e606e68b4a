"""The History page and its JSON API (docs/web.md), served beside the live view."""
