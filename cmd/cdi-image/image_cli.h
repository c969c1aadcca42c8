// cdi-image: import disk images by hand, and look inside them.
#ifndef CDI_CMD_CDI_IMAGE_IMAGE_CLI_H_
#define CDI_CMD_CDI_IMAGE_IMAGE_CLI_H_

namespace cdi::cli {

// Runs cdi-image with its command line; returns the process exit code (see exit_codes.h).
int RunImageCli(int argc, char** argv);

}  // namespace cdi::cli

#endif  // CDI_CMD_CDI_IMAGE_IMAGE_CLI_H_
