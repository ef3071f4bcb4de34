-- One database per shop service, created when the PostgreSQL volume is new.
CREATE DATABASE shop_users;
CREATE DATABASE shop_products;
CREATE DATABASE shop_orders;
CREATE DATABASE shop_inventory;
CREATE DATABASE shop_notifications;
