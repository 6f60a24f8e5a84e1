"""DeepR Studio: streamlit run app/main.py (a small router: the dashboard and the Compare page).

`streamlit run` first imports this file as a module and finds `app` below: a Streamlit app
with one more HTTP route, the live views' feed (components/feed.py). Then it runs this file as
__main__ for every page view."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

# Streamlit runs this file as __main__; training processes (deepr_engine.run.background) re-import
# it as __mp_main__ and must not draw a page.
if __name__ == "__main__":
    import streamlit as st

    from app import pages
    from app.routes import compare, dashboard

    from app import public
    if public.settings().public:   # a visitor never sees a traceback or a server path (logged)
        st.set_option("client.showErrorDetails", "none")
    st.set_page_config(page_title="DeepR Studio", page_icon="🧠", layout="wide")
    page = st.navigation(pages.build(dashboard.render, compare.render, "routes/sweep.py"))
    page.run()
elif __name__ != "__mp_main__":
    import streamlit as st

    from app.components import feed

    app = st.App(Path(__file__).resolve(), routes=feed.routes())
