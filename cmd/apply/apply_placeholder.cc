// Placeholder until `cdi-image apply` lands.
