"""The configuration floor: reading, checking and holding a study. Imports no ML library."""
