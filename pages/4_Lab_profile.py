"""Lab profile: tune the model to your own microscope with a few labelled cells."""

import streamlit as st

from hematovision.app import cache, figures, navigation, state, tables
from hematovision.heads.lab_profile import MIN_PER_CLASS, ProfileError

st.title("Lab profile")
st.markdown(
    f"Every lab's stain, camera and magnification differ. Label a few of your own cells (a ZIP with one folder "
    f"per class, named as the classes are; at least {MIN_PER_CLASS} cells of each class you use, 5 or more "
    "recommended) and HematoVision corrects its reading for your lab. It says how well, measured on your own "
    "cells: each one classified by a profile made from all the others (leave-one-out)."
)
classifier = cache.classifier_or_stop()
st.caption("Classes: " + ", ".join(classifier.classes))

examples = st.file_uploader("Your labelled cells (ZIP of class folders)", type=["zip"])
saved = st.file_uploader("Or a profile you saved before (.npz)", type=["npz"])
if saved is not None:
    try:
        state.keep_profile(saved.name.removesuffix(".npz"), state.profile_from_file(saved.getvalue()))
    except ProfileError as exc:
        st.error(f"**{saved.name}** cannot be used: {exc}")
if examples is not None:
    try:
        with st.spinner("Building the profile…"):
            profile, notes = state.cached_profile(examples.name, examples.getvalue())
        state.keep_profile(examples.name.removesuffix(".zip"), profile)
        for note in notes:
            st.warning(note)
    except ProfileError as exc:
        st.error(f"**{examples.name}** cannot be used: {exc}")

name, profile = state.chosen_profile()
if profile is None:
    st.info("No lab profile in use: every page reads images with the shipped model alone.")
    navigation.footer()
    st.stop()

decision = profile.decision
if decision.applied:
    st.header(f"Profile in use: {name}")
    st.success(f"**Used**{decision.reason.removeprefix('used')}", icon=":material/check_circle:")
else:
    # A profile that would not have helped on its own cells is kept, shown and downloadable, but the pages read
    # with the model alone: the user is told which answer they get and why.
    st.header(f"Profile chosen, not used: {name}")
    st.info(
        f"**Not used**{decision.reason.removeprefix('not used')}. Every page reads your images with the model "
        "alone, as if no profile were chosen.",
        icon=":material/block:",
    )
loo = profile.leave_one_out
columns = st.columns(3)
columns[0].metric("your cells, leave-one-out", f"{100 * loo['accuracy']:.1f}%")
columns[1].metric("the model alone on them", f"{100 * loo['without_profile']:.1f}%")
columns[2].metric("examples", loo["n"])
st.dataframe(tables.profile_table(profile), hide_index=True)
untouched = profile.untouched_classes()
if untouched:
    st.caption(f"No examples of {', '.join(untouched)}: those classes are read as the shipped model reads them.")
st.plotly_chart(figures.confusion_heatmap(loo["confusion_matrix"], profile.classes, normalise=False))
st.download_button("Download this profile", profile.to_bytes(), file_name=f"{name}.npz")
st.caption(
    "Leave-one-out on a handful of cells is a rough estimate: with 5 cells per class, one cell is 20 points of "
    "that class's figure. Classify and Explain use the profile chosen in the sidebar."
)
navigation.footer()
