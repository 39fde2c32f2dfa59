"""Model registry: one record per detector/recognizer artifact, one production version per kind."""
