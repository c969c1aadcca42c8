// cdi-image: the command-line face of the importer.
#include "cmd/cdi-image/image_cli.h"

int main(int argc, char** argv) { return cdi::cli::RunImageCli(argc, argv); }
