"""Sensitive words that block a campaign, and the signature/unsubscribe footer.

```toml
[sensitive]
words = ["发票", "贷款"]           # compared after NFKC and case folding
file = "/etc/modempool/sensitive.txt"   # optional, one word per line

[signature]
text = "【某某公司】"             # put in front of campaign messages
footer = "回T退订"                # put at the end
marketing_only = true            # only campaigns of kind "marketing" get them (default)
```
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modempool.errors import ConfigError


def _raw(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    return config if isinstance(config, dict) else getattr(config, "raw", {}) or {}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True, slots=True)
class SensitiveWords:
    words: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> SensitiveWords:
        section = _raw(config).get("sensitive", {})
        words = section.get("words", [])
        words = [words] if isinstance(words, str) else list(words)
        if not all(isinstance(w, str) for w in words):
            raise ConfigError("[sensitive] words must be a list of strings, e.g. [\"贷款\"]")
        if section.get("file"):
            path = Path(section["file"]).expanduser()
            try:
                words += [w.strip() for w in path.read_text("utf-8").splitlines()
                          if w.strip() and not w.startswith("#")]
            except OSError as exc:
                raise ConfigError(f"[sensitive] file {str(path)!r}: {exc.strerror}") from None
        return cls(tuple(dict.fromkeys(w for w in words if w)))

    def found_in(self, text: str) -> list[str]:
        """The listed words that occur in `text`, in list order."""
        folded = _fold(text)
        return [w for w in self.words if _fold(w) in folded]


@dataclass(frozen=True, slots=True)
class Signature:
    text: str = ""
    footer: str = ""
    marketing_only: bool = True

    @classmethod
    def from_config(cls, config: Any) -> Signature:
        section = _raw(config).get("signature", {})
        return cls(str(section.get("text", "")), str(section.get("footer", "")),
                   bool(section.get("marketing_only", True)))

    def apply(self, message: str, *, marketing: bool) -> str:
        """Add the signature in front and the footer at the end, unless already there."""
        if self.marketing_only and not marketing:
            return message
        if self.text and not message.startswith(self.text):
            message = self.text + message
        if self.footer and not message.endswith(self.footer):
            message = message + self.footer
        return message
