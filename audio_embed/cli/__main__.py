"""``python -m audio_embed.cli``: the ``audio-embed`` command."""

from __future__ import annotations

import sys

from audio_embed.cli import main

if __name__ == "__main__":
    sys.exit(main())
