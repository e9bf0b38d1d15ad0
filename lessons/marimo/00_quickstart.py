import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    mo.md(
        """
        # Quick start in marimo: load a model, trace a prompt, look inside

        The marimo version of `lessons/00_quickstart.ipynb`. It runs offline, on the CPU, in
        seconds, on `facts-4l`, a small teaching model that ships with the kit. Open it with
        `marimo edit lessons/marimo/00_quickstart.py`, or as an app with `marimo run ...`.
        """
    )
    return (mo,)


@app.cell
def _():
    import kit
    from kit.train import load_world

    model = kit.load("facts-4l", device="cpu")
    country = load_world().countries[0]  # the invented world that facts-4l has memorised
    prompt = f"The capital of {country['name']} is"
    tr = model.trace(prompt)
    return country, kit, model, prompt, tr


@app.cell
def _(country, mo, model, prompt, tr):
    top = tr.logits[0, -1].softmax(-1).topk(3)
    guesses = ", ".join(
        f"`{model.to_str_tokens([int(i)])[0]}` {float(p):.2f}" for p, i in zip(top.values, top.indices)
    )
    mo.md(
        f"""
        **{prompt}** ... the answer is {country['capital']}.

        Tokens: `{tr.tokens[0]}`; logits `{tuple(tr.logits.shape)}` `[batch, pos, vocab]`;
        attention `{tuple(tr["pattern", 0].shape)}` `[batch, head, query, key]`.
        The model's top guesses: {guesses}.
        """
    )
    return


@app.cell
def _(mo, tr):
    from kit.widgets import AttentionViewer

    # mo.ui.anywidget makes the view a marimo UI element: a click in it reruns the cells below
    viewer = mo.ui.anywidget(AttentionViewer(tr))
    viewer
    return (viewer,)


@app.cell
def _(mo, viewer):
    _state = viewer.value
    mo.md(f"Zoomed in: **layer {_state['layer']}, head {_state['head']}** (click a thumbnail to change it).")
    return


@app.cell
def _(kit, model):
    from kit.charts import head_heatmap

    head_heatmap(kit.analysis.prev_token_scores(model), "previous-token score of every head")
    return


if __name__ == "__main__":
    app.run()
