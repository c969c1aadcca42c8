// cdi-containerimage-server: serves the disk file of a containerDisk image
// over HTTP, for CDI's registry imports with the node pull method.
//
// CDI's controller copies this program out of the importer image
// (`cp /usr/bin/cdi-containerimage-server /shared/server` in an init
// container) into a container of the user's containerDisk image, which may
// hold nothing else: the program is linked statically. It runs there as
//   /shared/server -p 8100 -image-dir /disk -ready-file /shared/ready -done-file /shared/done
// and the importer container of the same pod reads the disk from
// http://localhost:8100/<file>. The DataImportCron's digest pod runs it as
// `/shared/server -h`, which prints the usage and exits 0.
//
// What it does, as CDI's (tools/cdi-containerimage-server):
//  - refuses bootc images (a /sysroot or /ostree directory), exit 1;
//  - prints every path under the image directory, one a line, on stdout;
//  - requires exactly one entry in the image directory, not a directory
//    ("Invalid container image", exit 1);
//  - listens on 127.0.0.1:<p>, then writes the entry's name into the ready
//    file (mode 0600), removed again at exit;
//  - serves GET and HEAD of every file under the directory (one byte range
//    per request, `Range: bytes=a-b`, `a-`, `-n`, honoured with 206 and
//    Content-Range, `If-Range` against Last-Modified; several ranges are
//    answered with the whole file), directory listings, and /info: the JSON
//    {"env":[...]} of this process's environment;
//  - polls the done file every second; once it exists, removes it, stops
//    serving and exits 0 ("Importer has completed").
// Flags are Go's (pod/go_flags.h); a bad flag exits 2 after the usage.
#ifndef CDI_POD_CONTAINERIMAGE_SERVER_H_
#define CDI_POD_CONTAINERIMAGE_SERVER_H_

#include <string>
#include <vector>

namespace cdi::pod {

// Runs the server on `arguments` (without the program name) until the done
// file appears; returns the exit code.
int RunContainerImageServer(const std::string& program, const std::vector<std::string>& arguments);

}  // namespace cdi::pod

#endif  // CDI_POD_CONTAINERIMAGE_SERVER_H_
