"""What people look at: image grids, tables."""
