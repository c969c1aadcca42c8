// The shared library is made of the static importer library, whole; this file
// only gives CMake a source to build it from.
