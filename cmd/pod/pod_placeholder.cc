// Placeholder until the pod entrypoint lands.
