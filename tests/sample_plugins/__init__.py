"""Small plugin modules that registry tests point entry points at, broken ones included."""
