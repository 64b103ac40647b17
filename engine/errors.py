"""Named errors a user can cause; the CLI turns each into a one-line message.

Every message names the file, row, id or value at fault and, where it helps, what to
do; the engine raises only these for anything a user or the environment can cause.
"""


class FashionrecError(Exception):
    """Base of every error caused by input, configuration or the environment."""


class ConfigError(FashionrecError):
    """A setting, a flag's value or a settings file (TOML) is malformed or out of range."""


class NotFoundError(FashionrecError):
    """An item, user, backbone or store the command names does not exist (or it is empty)."""


class CatalogError(FashionrecError):
    """The catalog (folder, manifest, file name) cannot be read as given."""


class MaskError(CatalogError):
    """A mask is not a lossless DF-MM segmentation mask, or names unknown labels."""


class MaskMissingError(CatalogError):
    """An image has no mask and the run was told to fail on missing masks."""


class WeightsError(FashionrecError):
    """Backbone weights cannot be obtained or do not fit the architecture."""


class StoreError(FashionrecError):
    """The vector store cannot be opened or used."""


class StoreLockedError(StoreError):
    """The embedded store is held open by another process."""


class EventLogError(FashionrecError):
    """The event log cannot be opened or written."""


class ShopsError(FashionrecError):
    """A stores file is malformed, or a change would leave items or purchases without a shop."""


class PurchaseLogError(FashionrecError):
    """A purchase log is malformed or names unknown items or stores; nothing is imported."""


class TransferError(FashionrecError):
    """Exported vectors or payloads cannot be written or loaded."""


class SnapshotError(FashionrecError):
    """A snapshot cannot be written, read or restored."""


def one_line(detail: object, limit: int = 200) -> str:
    """The first non-empty line of an error's text (or its type), shortened: for messages."""
    lines = [line.strip() for line in str(detail).splitlines() if line.strip()]
    return (lines[0] if lines else type(detail).__name__)[:limit]
