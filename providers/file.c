#include "provider.h"
const struct provider_ops file_provider_ops = { .type = "file" };
