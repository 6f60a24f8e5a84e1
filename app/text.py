"""Text from users (URL values, typed fields, uploaded files) shown as text.

Streamlit renders messages as Markdown: `/?preset=[Log in here](https://evil.example)` would be a
clickable link in the error box and `![x](http://host/t.png)` an image the visitor's browser
fetches. Every ASCII punctuation character becomes a numeric character reference (`:` is
`&#58;`): the page shows the same characters, and none of them starts a link, an image,
emphasis, HTML, math ($) or a shortcode (:name:). The page also turns bare addresses into links
(https://..., www.x, a@b.c) after the Markdown is read, escaped or not, so a word joiner (U+2060,
invisible) follows every ':', '.' and '@': no address stays whole."""
from __future__ import annotations

import re

_PUNCT = re.compile(r"[!-/:-@\[-`{-~]")  # every ASCII punctuation character
JOINER = "\u2060"


def plain(text: object) -> str:
    """`text` written so that Markdown shows it character for character (plus invisible joiners
    after ':', '.' and '@'); newlines kept."""
    return _PUNCT.sub(lambda m: f"&#{ord(m.group())};" + (JOINER if m.group() in ":.@" else ""),
                      str(text))
