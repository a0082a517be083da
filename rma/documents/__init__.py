"""Documents rendered in memory from plain data (STYLE habit 10): Code128 barcodes for
pages (SVG) and PDFs (vector bars), and the RMA parcel label (R-R2)."""
