// Everything of deja::net in one include: addresses, TCP, UDP, name lookup, buffered I/O and frames.
#pragma once

#include "deja/net/async_io.hpp"
#include "deja/net/buf_reader.hpp"
#include "deja/net/buf_writer.hpp"
#include "deja/net/driver.hpp"
#include "deja/net/errors.hpp"
#include "deja/net/frame_codec.hpp"
#include "deja/net/ip_addr.hpp"
#include "deja/net/lookup_host.hpp"
#include "deja/net/socket_addr.hpp"
#include "deja/net/tcp_listener.hpp"
#include "deja/net/tcp_stream.hpp"
#include "deja/net/udp_socket.hpp"
