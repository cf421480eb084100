"""Models: the paper's VGG-16 classifier (``vgg``) and checkpoint I/O (``checkpoint``)."""
