/* The one version number of PRPC (the project, the SDK and the bundled plugins). */
#ifndef PRPC_VERSION_H
#define PRPC_VERSION_H

#define PRPC_VERSION_MAJOR 0
#define PRPC_VERSION_MINOR 1
#define PRPC_VERSION_PATCH 0
#define PRPC_VERSION_STRING "0.1.0"

#endif /* PRPC_VERSION_H */
