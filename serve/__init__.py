"""The HTTP face of fashionrec (`fashionrec serve`): a JSON API and a web page over the engine."""
