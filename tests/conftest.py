import os

from hypothesis import HealthCheck, settings

# "ci" keeps the whole tox matrix fast; run HYPOTHESIS_PROFILE=thorough locally
# for a deeper search.
# ci is derandomized: a CI verdict must not depend on the draw (thorough explores).
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
