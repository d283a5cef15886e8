"""Training of facesortd's own LBP cascade (``facesortd train-detector``), in OpenCV's XML format.

OpenCV 4 and 5 no longer ship opencv_traincascade, so the project trains its detector itself:
features and boosting in numpy, negatives mined with the partial cascade run by OpenCV.
"""
