"""Sensitive words that block a campaign or a recurring job; the signature/unsubscribe footer is
`config.signature` (`SignatureConfig.apply`).

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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modempool.config import Config
from modempool.errors import ConfigError


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True, slots=True)
class SensitiveWords:
    words: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> SensitiveWords:
        """The `[sensitive]` words, and those of its file (read now, so edits apply at once)."""
        section = config.sensitive
        words = list(section.words)
        if section.file:
            path = Path(section.file).expanduser()
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

    def found_in_any(self, texts: Iterable[str]) -> tuple[str, ...]:
        """The listed words that occur in any of `texts` (a template and what it renders to),
        in list order: a campaign or recurring job with any of them is not sent."""
        found: set[str] = set()
        for text in texts:
            found.update(self.found_in(text))
        return tuple(w for w in self.words if w in found)
