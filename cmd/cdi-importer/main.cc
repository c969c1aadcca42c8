// Placeholder until the pod entrypoint lands.
int main() { return 1; }
