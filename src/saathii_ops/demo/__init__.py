"""`saathii-ops demo`: sample data and a short tour on the embedded database."""
