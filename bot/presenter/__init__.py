"""The presentation kit: the views (`views`), built from a session (`build`), in the same words
everywhere (`wording`), with one button-id codec (`ids`) and one dispatch per view kind for
an adapter's rendering (`render`). Text is clipped and split by `bot.text`."""
