"""Files for the places people deploy to: a Triton model repository (`triton`) and a DeepStream tracker
Re-ID model with its config section (`deepstream`). Each writes what that system reads and checks it
against that system's schema or formula."""
