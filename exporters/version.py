"""The version gigawatt reports (build info, the OpenAPI document)."""

VERSION = "0.1.0"
