"""Named errors a user can cause; the CLI turns each into a one-line message."""


class FashionrecError(Exception):
    """Base of every error caused by input, configuration or the environment."""


class CatalogError(FashionrecError):
    """The catalog (folder, manifest, file name) cannot be read as given."""


class MaskMissingError(CatalogError):
    """An image has no mask and the run was told to fail on missing masks."""


class WeightsError(FashionrecError):
    """Backbone weights cannot be obtained or do not fit the architecture."""


class StoreError(FashionrecError):
    """The vector store cannot be opened or used."""


class StoreLockedError(StoreError):
    """The embedded store is held open by another process."""
