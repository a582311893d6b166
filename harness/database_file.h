// A results database that commands only read: it must exist and be ctxbench's.
#pragma once

#include <string>

namespace ctxbench {

// Checks, without creating or changing anything, that `path` is an existing ctxbench database of a schema
// this build reads; throws InputError saying what it is instead. Commands that only read call it before opening
// a Store, which would otherwise create a missing file or add tables to a foreign one.
void check_readable_database(const std::string& path);

}  // namespace ctxbench
