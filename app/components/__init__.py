"""Browser-drawn live views (Streamlit custom components v2: JavaScript and CSS in this folder,
no build step, nothing fetched from the network)."""
