// moedist/export.hpp — what libmoedist exports. The library builds with hidden visibility: only
// the C API and the classes and functions marked MOEDIST_API are visible to its users.
#pragma once

#define MOEDIST_API __attribute__((visibility("default")))
