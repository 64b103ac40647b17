"""The application: one home held open, with the use-cases both faces call and the documents
they answer."""

from engine.application.base import PhotoNetworks
from engine.application.home import Application, taxonomy_in_force

__all__ = ["Application", "PhotoNetworks", "taxonomy_in_force"]
