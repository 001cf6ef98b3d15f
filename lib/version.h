/* The library's version; bump with every release. */
#ifndef SL_VERSION_H
#define SL_VERSION_H
#define SLUICE_VERSION "0.1.0"
#endif
