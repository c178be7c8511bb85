"""``hf-hub:ORG/REPO`` weights, fetched (or found in the local cache) by huggingface_hub.

The reference may name a revision and a file: ``hf-hub:ORG/REPO@REV/path/file.safetensors``;
without a file it is ``model.safetensors``. With ``HF_HUB_OFFLINE=1`` huggingface_hub
answers from its cache (``HF_HUB_CACHE``) without the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsError

PREFIX = "hf-hub:"
DEFAULT_FILENAME = "model.safetensors"


@dataclass(frozen=True)
class HubFile:
    """One file of a Hugging Face Hub model repo."""

    repo_id: str
    filename: str = DEFAULT_FILENAME
    revision: str | None = None

    @classmethod
    def parse(cls, reference: str) -> HubFile:
        rest = reference.removeprefix(PREFIX)
        parts = rest.split("/")
        if len(parts) < 2 or not all(parts[:2]):
            raise WeightsError(f"{reference!r} is not a hub reference; write hf-hub:ORG/REPO "
                               "(optionally @REVISION and /FILE, e.g. hf-hub:ORG/REPO@main/model.safetensors)")
        repo, revision = parts[1].split("@", 1) if "@" in parts[1] else (parts[1], None)
        filename = "/".join(parts[2:]) or DEFAULT_FILENAME
        return cls(f"{parts[0]}/{repo}", filename, revision)

    def __str__(self) -> str:
        revision = f"@{self.revision}" if self.revision else ""
        return f"{PREFIX}{self.repo_id}{revision}/{self.filename}"

    def locate(self) -> Path:
        """The local path of the file, downloading it into the hub cache if needed."""
        try:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
        except ImportError:
            raise WeightsError(f"{self} needs huggingface_hub: pip install effnet[hub]") from None
        try:
            return Path(hf_hub_download(self.repo_id, self.filename, revision=self.revision))
        except LocalEntryNotFoundError:
            raise WeightsError(
                f"{self} is not in the local hub cache and the hub cannot be reached (offline, or "
                "HF_HUB_OFFLINE=1); download it once while online, or point HF_HUB_CACHE at a cache "
                "that holds it") from None
        except (EntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise WeightsError(f"could not fetch {self}: {first_line}") from None
