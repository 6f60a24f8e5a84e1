"""DeepR Studio's browser dashboard (Streamlit). Run: streamlit run app/main.py"""
