"""The local review page (`facesortd review`): label the quarantine with one key per file.

``queue`` lists the quarantine in review order, ``cache`` makes thumbnails and the model's guesses
once, ``classes`` says which classes a label may name and the key of each, ``decisions`` turns a
key press into the same journaled move and label a file-manager move is, ``panels`` gathers the
learning and model figures, ``server`` serves it all on 127.0.0.1 behind a token. ``static/``
holds the page itself: plain HTML, CSS and JavaScript, no build step.
"""
