"""The built-in constraint plugins, each written exactly as a user's plugin would be."""
