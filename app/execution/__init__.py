"""Alert -> order lifecycle: sizing, placement, fills, positions and P&L."""
