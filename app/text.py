"""Text from users (URL values, typed fields, uploaded files) shown as text.

Streamlit renders messages as Markdown: `/?preset=[Log in here](https://evil.example)` would be a
clickable link in the error box and `![x](http://host/t.png)` an image the visitor's browser
fetches. Every ASCII punctuation character becomes a numeric character reference (`:` is
`&#58;`): the page shows the same characters, and none of them starts a link, an image,
emphasis, HTML, math ($) or a shortcode (:name:). The page also turns bare addresses into links
after the Markdown is read, escaped or not (GFM's autolink literals: `http://` and `https://`,
`www.`, `mailto:`, `a@b.c`), so a word joiner (U+2060, invisible) goes inside each of those
marks: after the ':' before '//' or of mailto / xmpp, inside "www" (a joiner after "www." is
taken into the link), on both sides of an '@'."""
from __future__ import annotations

import re

_PUNCT = re.compile(r"[!-/:-@\[-`{-~]")  # every ASCII punctuation character
_ADDRESS = re.compile(r":(?=/)|(?<=mailto):|(?<=xmpp):|@|(?<=ww)(?=w\.)", re.IGNORECASE)
JOINER = "\u2060"


def plain(text: object) -> str:
    """`text` written so that Markdown shows it character for character (with an invisible
    joiner inside every address mark); newlines kept."""
    text = _ADDRESS.sub(lambda m: (JOINER + m.group() if m.group() == "@" else m.group()) + JOINER,
                        str(text))
    return _PUNCT.sub(lambda m: f"&#{ord(m.group())};", text)
