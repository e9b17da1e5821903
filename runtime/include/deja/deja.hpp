// Everything a deja program needs from the runtime layer, in one include.
#pragma once

#include "deja/assert.hpp"
#include "deja/context.hpp"
#include "deja/current_thread_runtime.hpp"
#include "deja/errors.hpp"
#include "deja/interval.hpp"
#include "deja/io.hpp"
#include "deja/join_handle.hpp"
#include "deja/join_set.hpp"
#include "deja/race.hpp"
#include "deja/random.hpp"
#include "deja/spawn.hpp"
#include "deja/task.hpp"
#include "deja/time.hpp"
#include "deja/when_all.hpp"
#include "deja/yield_now.hpp"
