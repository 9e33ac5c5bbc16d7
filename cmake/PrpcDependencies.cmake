# Imported targets for the Debian packages PRPC builds on, made in one place.
include(PrpcMissing)
prpc_check_dependencies()  # one line naming every missing package, before any REQUIRED fails
find_package(Threads REQUIRED)

# Boost 1.81 headers only: Asio and DLL (on std::filesystem, so no Boost.Filesystem library).
find_package(Boost 1.81.0 EXACT REQUIRED CONFIG COMPONENTS headers)
if(NOT TARGET prpc::boost)
  add_library(prpc_boost INTERFACE)
  add_library(prpc::boost ALIAS prpc_boost)
  target_link_libraries(prpc_boost INTERFACE Boost::headers Threads::Threads ${CMAKE_DL_LIBS})
  target_compile_definitions(prpc_boost INTERFACE BOOST_DLL_USE_STD_FS BOOST_ASIO_NO_DEPRECATED)
endif()

find_package(RapidJSON REQUIRED CONFIG)
if(NOT TARGET prpc::rapidjson)
  add_library(prpc_rapidjson INTERFACE)
  add_library(prpc::rapidjson ALIAS prpc_rapidjson)
  # SYSTEM: the 2016 headers are not clean under the project's warning set.
  target_include_directories(prpc_rapidjson SYSTEM INTERFACE ${RapidJSON_INCLUDE_DIRS} ${RAPIDJSON_INCLUDE_DIRS})
  target_compile_definitions(prpc_rapidjson INTERFACE RAPIDJSON_HAS_STDSTRING=1)
endif()

find_package(tomlplusplus REQUIRED CONFIG)

# libcrypto (libssl-dev): HMAC-SHA256 for signed messages, compared with CRYPTO_memcmp.
find_package(OpenSSL 3 REQUIRED COMPONENTS Crypto)

find_package(PkgConfig REQUIRED)

if(PRPC_BUILD_BROKER_REDIS)
  # Debian's HiredisConfigVersion.cmake is broken; pkg-config is reliable.
  pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
  if(NOT TARGET prpc::hiredis)
    add_library(prpc_hiredis INTERFACE)
    add_library(prpc::hiredis ALIAS prpc_hiredis)
    target_link_libraries(prpc_hiredis INTERFACE PkgConfig::HIREDIS)
  endif()
endif()

if(PRPC_BUILD_BROKER_KAFKA)
  pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
  if(NOT TARGET prpc::rdkafka)
    add_library(prpc_rdkafka INTERFACE)
    add_library(prpc::rdkafka ALIAS prpc_rdkafka)
    target_link_libraries(prpc_rdkafka INTERFACE PkgConfig::RDKAFKA)
  endif()
endif()

if(PRPC_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
