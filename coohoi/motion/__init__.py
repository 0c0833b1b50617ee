"""Motion: the clip format, forward kinematics, AMP features, the motion library, the generator and importers."""
