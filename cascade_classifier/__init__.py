"""The anime-face cascade (and verifier) facesortd ships as its default detector; see README.md."""
